"""Where the sliding windows sit: the per-axis window geometry, the tiles the kernels work through, the stride
phases. Pure arithmetic on shapes; imports only :mod:`~im2col_cnn.runtime`."""
