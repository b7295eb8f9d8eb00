"""The Kubernetes target: target model, safety checks, session, activities, in-cluster load."""
