"""Raw review sources, preparation (k-core, split, documents) and tokenization with Ray Data."""
