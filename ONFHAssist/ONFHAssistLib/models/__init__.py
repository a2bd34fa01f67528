"""Networks only (`nn.Module` builders); loading, pre- and post-processing live elsewhere."""
