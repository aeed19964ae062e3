"""Link layers: cut the byte stream into frames, check their CRCs, reassemble segments."""
