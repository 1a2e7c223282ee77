"""Client authentication, tenants and budgets: Envoy's ext_authz served by the controller."""
