"""bconnect-nc: an example third-party bconnect plugin offering the ``nc`` connect helper.

``plugin`` holds the hook implementations (what bconnect loads through the entry point);
``client`` is the small netcat-like program the helper launches.
"""

__version__ = "0.1.0"
