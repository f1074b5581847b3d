/**
 * An S3 server for the tests: Ceph's RADOS Gateway on a one-node cluster in one container
 * (`edms-test/s3:radosgw-18.2`, docs/s3-server.md), outside any stack, on a network the caller names and
 * reached there by name (`s3.external.test`), as a provider's endpoint is. The tests read and damage the
 * bucket with rclone from `edms-test/rclone`, never through edms-ops. Per test process (files run side by side).
 */
import { docker } from "../../ops/engine/docker";

const TAG = process.env.EDMS_TEST_PORT_BASE ?? "serial";
export const S3_ROLE = "test-s3";
export const S3_PREFIX = "e2e-s3-";
const SERVER = `${S3_PREFIX}${TAG}`;
const DATA = `${S3_PREFIX}data-${TAG}`;
export const S3_HOST = "s3.external.test";
export const S3_ENDPOINT = `http://${S3_HOST}:7480`;
/** With a TLS volume (startS3Server): https, its certificate from the external server's test CA. */
export const S3_TLS_ENDPOINT = `https://${S3_HOST}:7443`;
const IMAGE = "edms-test/s3:radosgw-18.2";
export const RCLONE_IMAGE = "edms-test/rclone:1.60";
/** Test-only keys: the server takes them from its env (docs/s3-server.md). */
export const S3_ACCESS_KEY = "e2e-access-4a7c";
export const S3_SECRET_KEY = "e2e-secret-9f3b2d61c0e8";

let network = "";

/**
 * `edms:media` of a stack whose bucket is on this server, reached through `on` (the server's network); over
 * https when given the CA's file (`caCertificateFile`), as an on-premises server with a private CA.
 */
export function bucketMediaConfig(
  bucket: string,
  on: string,
  caCertificateFile?: string,
): Record<string, unknown> {
  return {
    backend: "s3",
    bucket,
    endpoint: caCertificateFile ? S3_TLS_ENDPOINT : S3_ENDPOINT,
    ...(caCertificateFile ? { caCertificateFile } : {}),
    accessKeyId: S3_ACCESS_KEY,
    secretAccessKey: { secure: S3_SECRET_KEY },
    network: on,
    image: RCLONE_IMAGE,
  };
}

/** rclone's on-the-fly remote for the server (test keys on the command line: the tests' own client only). */
function remote(): string {
  return `:s3,provider=Other,access_key_id=${S3_ACCESS_KEY},secret_access_key=${S3_SECRET_KEY},endpoint='${S3_ENDPOINT}',force_path_style=true:`;
}

/**
 * Runs rclone against the server from the server's network (`s3:` at the start of an argument is the
 * server); stdin as given; `volumes` (name → path) mounted.
 */
export async function s3(
  args: string[],
  input?: string,
  volumes: Record<string, string> = {},
): Promise<string> {
  const result = await docker(
    [
      "run",
      "--rm",
      "-i",
      "--label",
      `edms.role=${S3_ROLE}`,
      "--network",
      network,
      ...Object.entries(volumes).flatMap(([volume, path]) => ["-v", `${volume}:${path}`]),
      RCLONE_IMAGE,
      ...args.map((a) => a.replace(/^s3:/, remote())),
    ],
    { input: input ?? "" },
  );
  return result.stdout;
}

/** Starts the server on `onNetwork`; with `tlsVolume` (s3.crt, s3.key) it also serves S3_TLS_ENDPOINT. */
export async function startS3Server(onNetwork: string, tlsVolume?: string): Promise<void> {
  network = onNetwork;
  await docker(["rm", "-f", "-v", SERVER], { allowFailure: true });
  await docker(["volume", "rm", "-f", DATA], { allowFailure: true });
  await docker([
    "run",
    "-d",
    "--name",
    SERVER,
    "--label",
    `edms.role=${S3_ROLE}`,
    "--network",
    network,
    "--network-alias",
    S3_HOST,
    "-v",
    `${DATA}:/var/lib/s3`,
    ...(tlsVolume ? ["-v", `${tlsVolume}:/tls:ro`, "-e", "S3_TLS_DIR=/tls"] : []),
    "-e",
    `S3_ACCESS_KEY=${S3_ACCESS_KEY}`,
    "-e",
    `S3_SECRET_KEY=${S3_SECRET_KEY}`,
    IMAGE,
  ]);
  // The first start makes the cluster (~16 s alone): bounded at 3 minutes beside other test files.
  for (let attempt = 0; attempt < 180; attempt += 1) {
    const listed = await docker(
      [
        "run",
        "--rm",
        "--network",
        network,
        RCLONE_IMAGE,
        "lsd",
        remote(),
        "--contimeout",
        "2s",
        "--low-level-retries",
        "1",
        "--retries",
        "1",
      ],
      { allowFailure: true },
    );
    if (listed.code === 0) {
      return;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  const logs = await docker(["logs", "--tail", "20", SERVER], { allowFailure: true });
  throw new Error(`${SERVER} did not answer S3 within 3 minutes: ${logs.stderr}`);
}

export async function stopS3Server(): Promise<void> {
  await docker(["rm", "-f", "-v", SERVER], { allowFailure: true });
  await docker(["volume", "rm", "-f", DATA], { allowFailure: true });
}

export async function makeBucket(bucket: string): Promise<void> {
  await s3(["mkdir", `s3:${bucket}`]);
}

/** Every object under `path` (bucket/prefix) by its sha256 (downloaded), sorted: the bucket's fingerprint. */
export async function bucketFingerprint(path: string): Promise<string> {
  const listed = await s3(["hashsum", "sha256", "--download", `s3:${path}`]);
  return listed
    .trim()
    .split("\n")
    .filter(Boolean)
    .sort((a, b) => a.split("  ")[1].localeCompare(b.split("  ")[1]))
    .join("\n");
}

/** The keys under `path`, relative to it, sorted. */
export async function bucketKeys(path: string): Promise<string[]> {
  return (await s3(["lsf", "-R", "--files-only", `s3:${path}`]))
    .trim()
    .split("\n")
    .filter(Boolean)
    .sort();
}

/** Writes `content` to the key `path` (bucket/prefix/…): a new object or an overwrite. */
export async function putObject(path: string, content: string): Promise<void> {
  await s3(["rcat", `s3:${path}`], content);
}

export async function deleteObject(path: string): Promise<void> {
  await s3(["deletefile", `s3:${path}`]);
}
