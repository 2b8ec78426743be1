"""The sandbox server (``resrl serve sandbox``)."""
