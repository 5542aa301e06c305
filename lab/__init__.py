"""A simulated national network of SNMP agents and SSH CLIs (coming with the Lab issue)."""
