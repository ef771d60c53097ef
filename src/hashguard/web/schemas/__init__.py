"""The JSON shapes of the API (pydantic models, which also make the OpenAPI document), one
module per router; ``results`` holds the shapes they share."""
