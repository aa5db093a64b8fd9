"""The GraphQL face: Strawberry types and thin resolvers over the `app` services."""
