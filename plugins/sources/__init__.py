"""Built-in ratiofit plugins."""
