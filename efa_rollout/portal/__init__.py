"""The municipalities' self-service portal and its personal links."""
