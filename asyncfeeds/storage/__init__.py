"""Storage backends behind the feeds: protocols in ``base``, one module or package per backend."""
