"""The transform network (`transformer`) and the inference file it is saved in (`network_file`)."""
