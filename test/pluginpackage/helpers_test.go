package pluginpackage

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
)

func sha256hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// clearsign wraps a manifest in OpenPGP clear-signed framing (with a dummy
// signature block; signatures are not verified).
func clearsign(files map[string]string) string {
	body, _ := json.MarshalIndent(map[string]any{
		"manifestVersion": "2.0.0", "signatureType": "community", "signedByOrg": "vigil",
		"plugin": "vigil-cdp-app", "version": "1.2.3", "files": files,
	}, "", "  ")
	return "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n" + string(body) +
		"\n-----BEGIN PGP SIGNATURE-----\n\nwsBcBAEBCAAQBQJ=\n-----END PGP SIGNATURE-----\n"
}
