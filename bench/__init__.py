"""Benchmarks of blendkit and the trainer; not installed with them (``make bench`` runs
``python -m bench`` from the repository root).

- ``run``          every benchmark -> BENCHMARKS.md (``python -m bench``)
- ``media``        the synthetic media every benchmark uses (proxies for Kinetics video)
- ``superpixels``  fast superpixels against full-resolution SLIC, and the quality metrics
- ``baseline``     the identity baseline of the proxy shards (Table 1's "Identity")
- ``loader``       shards -> batched tensors (``trainer.data.make_loader``)
- ``engines``      make-shards with the local engine against Ray
- ``train``        a training step of every model on the CPU
- ``gpu``          paper-size training steps and the loader on one GPU (``make bench-gpu``),
                   its section of BENCHMARKS.md (``gpu_report``) and the wheels a GPU host
                   without a registry needs (``wheels``, ``make device-wheels``)
"""
