"""The public layer functions: argument handling, the layout of the caller's arrays, the caches; each calls the
kernels."""
