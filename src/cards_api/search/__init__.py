"""Search by meaning and prompt-ready context: embedders, the tokenizer, text to embed."""
