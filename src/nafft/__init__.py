"""nafft: image motion deblurring with NAFNet and NAFFT-Net."""

__version__ = "0.1.0"
