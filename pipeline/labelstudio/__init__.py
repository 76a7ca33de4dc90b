"""The only package that imports label_studio_sdk or speaks HTTP to Label Studio."""
