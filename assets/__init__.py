"""Software-defined assets of the flight-delay lifecycle, one module per stage."""
