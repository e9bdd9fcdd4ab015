"""Model adapters: one module per model kind, each owning its model's pre/post-processing
and declaring, as data, the I/O contract it relies on (see :mod:`ffswap.contracts`)."""
