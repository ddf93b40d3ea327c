"""The paper-reproduction study plugins (one module per plugin; ``_searches`` and
``ncr_plots`` are shared helpers)."""
