"""The training reference: what normal looked like, how it is built (in bounded memory), and the audits of the training data."""
