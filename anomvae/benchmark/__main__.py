"""``python -m anomvae.benchmark``: the same as ``anomvae bench``."""

from .command import main

raise SystemExit(main())
