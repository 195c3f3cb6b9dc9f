import type { KeyObject } from 'node:crypto'

/** Algorithms a JWT signed by a key of this type may use: only its own family, never `none`. */
const ALGORITHMS_BY_KEY: Record<string, string[]> = {
  rsa: ['RS256', 'RS384', 'RS512'],
  'rsa-pss': ['PS256', 'PS384', 'PS512'],
  ed25519: ['EdDSA'],
  ed448: ['EdDSA']
}
const ALGORITHMS_BY_CURVE: Record<string, string[]> = {
  prime256v1: ['ES256'],
  secp384r1: ['ES384'],
  secp521r1: ['ES512']
}

/**
 * The algorithms a public key may verify: RS* for an RSA key, PS* for an RSA-PSS key, the one ES*
 * of an EC key's curve, EdDSA for Ed25519/Ed448; undefined for any other key. Never HS* or `none`:
 * a public key is never used as an HMAC secret (the key-confusion attack).
 */
export function keyAlgorithms (key: KeyObject): string[] | undefined {
  return key.asymmetricKeyType === 'ec'
    ? ALGORITHMS_BY_CURVE[String(key.asymmetricKeyDetails?.namedCurve)]
    : ALGORITHMS_BY_KEY[String(key.asymmetricKeyType)]
}
