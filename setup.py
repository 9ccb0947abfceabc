"""The optional native part of gnpcheck (gnpcheck/nn/native.py): the BCOP kernel's factors,
stages and QR gradients as a plain C library, which gnpcheck loads with ctypes. Without a C
compiler the install goes on without it, and the layers run the same operations in PyTorch."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "gnpcheck.nn._bcop_native",
            sources=["gnpcheck/nn/_bcop_native.c"],
            extra_compile_args=["-O3"],
            optional=True,
        )
    ]
)
