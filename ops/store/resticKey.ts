/**
 * A second key for the stack's restic repository whose key derivation costs restic's floor instead of half a
 * second of CPU.
 *
 * restic derives each key with scrypt, its parameters calibrated at `init` to take ~0.5 s on the host
 * (measured here: N=32768, r=8, p=5–6, 0.44 s of CPU), and every restic process pays that once before it does
 * anything: a restore starts nine, a backup four. That hardness protects a password a person
 * chose; this repository's password is the stack's generated `backupPassword` (48 random letters and digits,
 * ~285 bits), which no work factor makes harder to guess. So edms-ops adds a key for the same password and
 * the same master key with scrypt's own default parameters (N=16384, r=8, p=1: the ones restic's calibration
 * starts from, ~0.03 s), and every restic it starts names that key first (`--key-hint`).
 *
 * The key file is written in restic's format (doc/design.rst "Keys, Encryption and MAC"): the master key's
 * JSON sealed with AES-256-CTR and Poly1305-AES under the scrypt-derived user key. Node's crypto does scrypt
 * and AES; Poly1305 is @noble/ciphers' (audited), Node has none of its own. It is installed only once restic
 * itself opened a repository holding nothing but that key and the repository's config (whose decryption and
 * MAC prove the master key), and the calibrated key stays: should the hint name a key that is gone or does not
 * open, restic tries every key, as before.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  randomBytes,
  scryptSync,
  timingSafeEqual,
} from "crypto";
import { poly1305 } from "@noble/ciphers/_poly1305";
import { z } from "zod";

/** scrypt's default parameters (simple-scrypt's DefaultParams, restic's DefaultKDFParams). */
export const FAST_KDF = { N: 16384, r: 8, p: 1 } as const;
const SALT_BYTES = 64;
const IV_BYTES = 16;
const MAC_BYTES = 16;

const KeyFileSchema = z.object({
  kdf: z.literal("scrypt"),
  N: z.number().int().positive(),
  r: z.number().int().positive(),
  p: z.number().int().positive(),
  salt: z.string(),
  data: z.string(),
});

interface UserKey {
  readonly encrypt: Buffer;
  /** Poly1305-AES: `k` encrypts the nonce into the MAC's `s`, `r` is Poly1305's own. */
  readonly macK: Buffer;
  readonly macR: Buffer;
}

/** restic's crypto.KDF: 64 bytes of scrypt, the encryption key, then the MAC key as k‖r. */
function userKey(password: Buffer, salt: Buffer, params: { N: number; r: number; p: number }) {
  const bytes = scryptSync(password, salt, 64, {
    N: params.N,
    r: params.r,
    p: params.p,
    maxmem: 256 * params.N * params.r + 1024 * 1024,
  });
  return { encrypt: bytes.subarray(0, 32), macK: bytes.subarray(32, 48), macR: bytes.subarray(48) };
}

/** restic's poly1305MAC: Poly1305 keyed with r and AES-128_k(nonce). */
function mac(key: UserKey, nonce: Buffer, message: Buffer): Buffer {
  const aes = createCipheriv("aes-128-ecb", key.macK, null).setAutoPadding(false);
  const s = Buffer.concat([aes.update(nonce), aes.final()]);
  return Buffer.from(poly1305(message, Buffer.concat([key.macR, s])));
}

/** IV ‖ AES-256-CTR(plaintext) ‖ MAC, as restic's Key.Seal behind its nonce. */
function seal(key: UserKey, plaintext: Buffer, iv: Buffer): Buffer {
  const ctr = createCipheriv("aes-256-ctr", key.encrypt, iv);
  const ciphertext = Buffer.concat([ctr.update(plaintext), ctr.final()]);
  return Buffer.concat([iv, ciphertext, mac(key, iv, ciphertext)]);
}

/** restic's Key.Open: the plaintext, or null when the MAC does not match (another password, or damage). */
function open(key: UserKey, data: Buffer): Buffer | null {
  if (data.length < IV_BYTES + MAC_BYTES) {
    return null;
  }
  const iv = data.subarray(0, IV_BYTES);
  const ciphertext = data.subarray(IV_BYTES, data.length - MAC_BYTES);
  if (!timingSafeEqual(mac(key, iv, ciphertext), data.subarray(data.length - MAC_BYTES))) {
    return null;
  }
  const ctr = createDecipheriv("aes-256-ctr", key.encrypt, iv);
  return Buffer.concat([ctr.update(ciphertext), ctr.final()]);
}

export interface ResticKeyFile {
  /** Its name in the repository's keys/: the SHA-256 of its content, as restic names every file. */
  readonly id: string;
  readonly content: Buffer;
}

/**
 * A key file for `password` that opens to `masterKeyJson` (what `restic cat masterkey` prints), with the fast
 * parameters, a fresh salt and IV.
 */
export function fastKeyFile(password: Buffer, masterKeyJson: Buffer, created: Date): ResticKeyFile {
  const salt = randomBytes(SALT_BYTES);
  const data = seal(userKey(password, salt, FAST_KDF), masterKeyJson, randomBytes(IV_BYTES));
  const content = Buffer.from(
    JSON.stringify({
      created: created.toISOString(),
      username: "edms-ops",
      hostname: "edms-ops",
      kdf: "scrypt",
      ...FAST_KDF,
      salt: salt.toString("base64"),
      data: data.toString("base64"),
    }),
  );
  return { id: createHash("sha256").update(content).digest("hex"), content };
}

/**
 * The master key's JSON a key file holds, opened with `password` (restic's own files too); null when the
 * password does not open it or its data was changed. The proof, against restic's own key files, that this
 * module reads and writes restic's format.
 */
export function openKeyFile(password: Buffer, content: Buffer): Buffer | null {
  const file = KeyFileSchema.parse(JSON.parse(content.toString("utf8")));
  return open(
    userKey(password, Buffer.from(file.salt, "base64"), file),
    Buffer.from(file.data, "base64"),
  );
}
