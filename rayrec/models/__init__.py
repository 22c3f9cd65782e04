"""Review-based recommendation models: shared layers, text encoders, U-BERT, SIFN, ..."""
