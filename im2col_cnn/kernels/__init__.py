"""The computations: column matrices and their scatters, the convolution products (general, few-channel, depthwise)
and the pooling reductions. They take checked arrays and a geometry; they never see user arguments."""
