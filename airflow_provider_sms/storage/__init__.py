"""Storage: the only package that writes SQL or knows a dialect or a driver."""
