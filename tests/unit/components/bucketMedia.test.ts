/**
 * Issue 22, `edms:media`: documents in an S3-compatible bucket instead of the media volume. What validation
 * refuses, what the program declares, and edms-ops' rclone config (against a real radosgw:
 * tests/e2e/externalStack.test.ts).
 */
import { expect } from "chai";
import { runProgram } from "../../harness/mocks";
import { settingsProblems } from "../../harness/settingsProblems";
import { bucketMedia, s3CredentialsFile, validateSettings } from "../../../model/settings";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { spawnSync } from "child_process";
import { S3_CA_FILE, S3_CREDENTIALS_FILE } from "../../../model/containers";
import { bucketPath, rcloneConfig } from "../../../ops/backup/bucket";
import {
  CA_SEPARATOR,
  readCredentialsScript,
  splitCredentials,
  storeCredentialsScript,
  storeMediaCredentials,
} from "../../../ops/backup/bucketCredentials";
import { schedulerMounts } from "../../../components/scheduler";

const CONTAINER = "docker:index/container:Container";
const VOLUME = "docker:index/volume:Volume";
const NETWORK = "docker:index/network:Network";
const IMAGE = "docker:index/image:Image";
const SECRET = "S3-Secret-7d1a";

const roleOf = (inputs: Record<string, any>): string =>
  (inputs.labels as { label: string; value: string }[]).find((l) => l.label === "edms.role")!.value;

const media = {
  backend: "s3",
  bucket: "edms-documents",
  endpoint: "https://s3.eu-central-1.amazonaws.com",
  region: "eu-central-1",
  accessKeyId: "AKIAEXAMPLE",
  secretAccessKey: { secure: "v1:abc" },
};

const problems = settingsProblems;

describe("edms:media validation", function () {
  it("accepts a bucket, keeps the secret key out of Settings, and the prefix defaults to the name prefix", function () {
    const settings = validateSettings("staging", { environment: "staging", version: "1", media });
    expect(JSON.stringify(settings)).not.to.contain("v1:abc");
    expect(bucketMedia(settings)).to.deep.include({
      bucket: "edms-documents",
      prefix: "edms",
      region: "eu-central-1",
      image: "rclone/rclone:1.69.1",
    });
    const given = validateSettings("staging", {
      environment: "staging",
      version: "1",
      media: { ...media, prefix: "tenants/a" },
    });
    expect(bucketMedia(given)?.prefix).to.equal("tenants/a");
  });

  it("refuses a secret key in plain text, naming the --secret command, without echoing it", function () {
    const found = problems({ media: { ...media, secretAccessKey: "plain-key" } }).join("\n");
    expect(found).to.match(/media\.secretAccessKey is in plain text.*--secret --path edms:media/);
    expect(found).not.to.contain("plain-key");
  });

  it("refuses hostile or malformed buckets, endpoints, prefixes, keys, networks and images", function () {
    const bad: Record<string, unknown[]> = {
      bucket: ["Edms", "a", "bucket/other", "-edms", "edms..x;rm"],
      endpoint: ["s3.example.com", "ftp://x", "https://x/path", "https://x --dry-run", ""],
      prefix: ["/abs", "trail/", "a//b", "..", "a/../b", "a b", "", "--files-from=/etc/passwd"],
      accessKeyId: ["key with space", "k'ey", ""],
      network: ["host", "none", "--net=host"],
      image: ["rclone/rclone:1.69 --privileged", "Upper/Case"],
      backend: ["volume", "gcs"],
      region: ["EU Central"],
    };
    for (const [key, values] of Object.entries(bad)) {
      for (const value of values) {
        expect(problems({ media: { ...media, [key]: value } }), `${key}=${value}`).to.have.length(
          1,
        );
      }
    }
    expect(problems({ media: { ...media, extra: 1 } })).to.have.length(1);
    expect(problems({ media: { ...media, bucket: undefined } }).join()).to.contain("media.bucket");
  });

  it("a private CA's file: only with an https endpoint, and a path, not the PEM text", function () {
    expect(problems({ media: { ...media, caCertificateFile: "certs/s3-ca.pem" } })).to.deep.equal(
      [],
    );
    const plain = { ...media, endpoint: "http://s3.internal:7480", caCertificateFile: "ca.pem" };
    expect(problems({ media: plain }).join("\n")).to.match(
      /media\.caCertificateFile is for an https:\/\/ endpoint/,
    );
    const text = { ...media, caCertificateFile: "-----BEGIN CERTIFICATE-----\nMIIB" };
    expect(problems({ media: text }).join("\n")).to.match(/must be a file path, not the PEM text/);
  });

  it("production: an https endpoint only; dataGeneration refused everywhere", function () {
    const plain = { ...media, endpoint: "http://minio.internal:9000" };
    expect(problems({ media: plain })).to.deep.equal([]);
    expect(problems({ media: plain }, "production").join("\n")).to.match(
      /media\.endpoint: http:\/\/minio\.internal:9000` is not allowed on production/,
    );
    expect(problems({ media }, "production").join("\n")).not.to.match(/media/);
    expect(problems({ media, dataGeneration: 1 }).join("\n")).to.match(
      /cannot start media in a bucket afresh/,
    );
  });
});

describe("edms-ops' rclone config for the bucket", function () {
  const settings = validateSettings("staging", { environment: "staging", version: "1", media });
  const bucket = bucketMedia(settings)!;

  it("is S3 with path-style requests, never creating the bucket, on the stack's prefix only", function () {
    const config = rcloneConfig(bucket, SECRET);
    expect(config).to.match(/^\[bucket\]\ntype = s3\n/);
    expect(config).to.contain("force_path_style = true");
    expect(config).to.contain("no_check_bucket = true");
    expect(config).to.contain(`secret_access_key = ${SECRET}`);
    expect(bucketPath(bucket)).to.equal("bucket:edms-documents/edms");
  });

  it("boto3's credentials file holds the key pair under [default]", function () {
    expect(s3CredentialsFile("AKIA1", SECRET)).to.equal(
      `[default]\naws_access_key_id = AKIA1\naws_secret_access_key = ${SECRET}\n`,
    );
  });

  it("the scheduler mounts the mirror writable and the credentials read-only; without a bucket the media read-only", function () {
    const mounts = schedulerMounts(settings);
    expect(mounts["edms_media_files"]).to.deep.equal({
      path: "/edms/media",
      readOnly: false,
    });
    expect(mounts["edms_media_credentials"]).to.deep.equal({
      path: "/edms/media-credentials",
      readOnly: true,
    });
    const plain = validateSettings("staging", { environment: "staging", version: "1" });
    expect(schedulerMounts(plain)["edms_media_files"].readOnly).to.equal(true);
  });
});

describe("the endpoint's CA in edms-ops' credentials volume", function () {
  const config = rcloneConfig(
    bucketMedia({
      media: validateSettings("staging", { environment: "staging", version: "1", media }).media,
      namePrefix: "edms",
    })!,
    "s3cr3t",
  );
  const CA = "-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----\n";
  const shells = [["sh"], ...(fs.existsSync("/bin/busybox") ? [["/bin/busybox", "sh"]] : [])];
  for (const shell of shells) {
    it(`is written beside rclone's config, read back, and removed when no CA is configured (${shell.join(" ")})`, function () {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "edms-media-cred-"));
      const sh = (script: string, input: string) => {
        const done = spawnSync(shell[0], [...shell.slice(1), "-c", script], { input });
        expect(done.status, done.stderr.toString()).to.equal(0);
        return done.stdout.toString();
      };
      try {
        sh(storeCredentialsScript(dir), `${config}${CA_SEPARATOR}\n${CA}`);
        expect(fs.readFileSync(path.join(dir, "rclone.conf"), "utf8")).to.equal(config);
        expect(fs.readFileSync(path.join(dir, "ca.crt"), "utf8")).to.equal(CA);
        expect(fs.statSync(path.join(dir, "ca.crt")).mode & 0o077).to.equal(0);
        expect(splitCredentials(sh(readCredentialsScript(dir), ""))).to.deep.equal({
          config,
          ca: CA,
        });
        sh(storeCredentialsScript(dir), config);
        expect(fs.readdirSync(dir)).to.deep.equal(["rclone.conf"]);
        expect(splitCredentials(sh(readCredentialsScript(dir), ""))).to.deep.equal({
          config,
          ca: "",
        });
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  it("backups init refuses a configured CA it is not given, before touching the engine", async function () {
    const settings = validateSettings("staging", {
      environment: "staging",
      version: "1",
      media: { ...media, caCertificateFile: "ca.pem" },
    });
    const refused = await storeMediaCredentials(settings, { EDMS_MEDIA_SECRET_KEY: "k" }).then(
      () => undefined,
      (err: Error) => err,
    );
    expect(refused?.message).to.match(/EDMS_MEDIA_CA holds no -----BEGIN CERTIFICATE-----/);
  });
});

describe("the program with bucket media", function () {
  const run = (overrides: Record<string, unknown> = {}) =>
    runProgram({
      stack: "staging",
      overrides: {
        "edms:backup": { schedule: "@daily" },
        "edms:media": { ...media, secretAccessKey: { secure: SECRET }, ...overrides },
      },
    });

  it("web and worker store uploads in the bucket: django-storages' variables, the keys as a file, no media volume, the media network", async function () {
    const result = await run();
    expect(result.error).to.equal(undefined);
    const services = result
      .ofType(CONTAINER)
      .filter((c) => ["web", "worker"].includes(roleOf(c.inputs)));
    expect(services).to.have.length(2);
    for (const c of services) {
      expect(c.inputs.envs).to.include.members([
        "EDMS_MEDIA_BACKEND=s3",
        "EDMS_S3_BUCKET=edms-documents",
        "EDMS_S3_ENDPOINT=https://s3.eu-central-1.amazonaws.com",
        "EDMS_S3_REGION=eu-central-1",
        "EDMS_S3_PREFIX=edms-staging",
        `AWS_SHARED_CREDENTIALS_FILE=${S3_CREDENTIALS_FILE}`,
      ]);
      const file = c.inputs.uploads.find((u: { file: string }) => u.file === S3_CREDENTIALS_FILE);
      expect(file.content).to.equal(s3CredentialsFile("AKIAEXAMPLE", SECRET));
      expect(c.inputs.volumes ?? []).to.deep.equal([]);
      expect(c.inputs.networksAdvanced.map((n: { name: string }) => n.name)).to.include(
        "edms-staging-media",
      );
      expect(JSON.stringify(c.inputs.envs)).not.to.contain(SECRET);
    }
    const volumes = result.ofType(VOLUME).map((v) => v.inputs.name);
    expect(volumes).to.include.members([
      "edms-staging_media_files",
      "edms-staging_media_credentials",
    ]);
    expect(result.ofType(NETWORK).map((n) => n.inputs.name)).to.include("edms-staging-media");
  });

  it("hands the secret key to backupInit only, as a secret; the scheduler image gets rclone from media.image", async function () {
    const result = await run({ network: "s3-net", image: "rclone/rclone:1.68.2" });
    const init = result.byName("backupInit");
    expect(init.inputs.environment.EDMS_MEDIA_SECRET_KEY).to.equal(SECRET);
    expect(init.secretInputs).to.include("environment.EDMS_MEDIA_SECRET_KEY");
    for (const hook of ["migrate", "bootstrap", "healthGate"]) {
      const env = result.byName(hook)?.inputs.environment ?? {};
      expect(JSON.stringify(env), hook).not.to.contain(SECRET);
    }
    const image = result.ofType(IMAGE)[0];
    expect(image.inputs.build.args).to.include({
      RCLONE: "rclone/rclone:1.68.2",
      RCLONE_BINARY: "/usr/local/bin/rclone",
    });
    const scheduler = result.ofType(CONTAINER).find((c) => roleOf(c.inputs) === "scheduler")!;
    expect(scheduler.inputs.networksAdvanced.map((n: { name: string }) => n.name)).to.include(
      "s3-net",
    );
    expect(JSON.stringify(scheduler.inputs)).not.to.contain(SECRET);
    expect(result.ofType(NETWORK).map((n) => n.inputs.name)).not.to.include("edms-staging-media");
  });

  it("a private CA: uploaded to web and worker for boto3 (AWS_CA_BUNDLE) and handed to backupInit; an unreadable file is named", async function () {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "edms-s3-ca-"));
    const file = path.join(dir, "s3-ca.pem");
    const pem = "-----BEGIN CERTIFICATE-----\nMIIBs3ca\n-----END CERTIFICATE-----";
    fs.writeFileSync(file, pem);
    try {
      const result = await run({ caCertificateFile: file });
      expect(result.error).to.equal(undefined);
      const services = result
        .ofType(CONTAINER)
        .filter((c) => ["web", "worker"].includes(roleOf(c.inputs)));
      for (const c of services) {
        expect(c.inputs.envs).to.include.members([
          `EDMS_S3_CA_FILE=${S3_CA_FILE}`,
          `AWS_CA_BUNDLE=${S3_CA_FILE}`,
        ]);
        const ca = c.inputs.uploads.find((u: { file: string }) => u.file === S3_CA_FILE);
        expect(ca.content).to.equal(`${pem}\n`);
      }
      const init = result.byName("backupInit");
      expect(init.inputs.environment.EDMS_MEDIA_CA).to.equal(`${pem}\n`);
      const missing = await run({ caCertificateFile: path.join(dir, "gone.pem") });
      expect(missing.error?.message).to.match(/edms:media\.caCertificateFile` cannot be read/);
      fs.writeFileSync(file, "not a certificate");
      const bad = await run({ caCertificateFile: file });
      expect(bad.error?.message).to.match(/holds no -----BEGIN CERTIFICATE----- block.*endpoint/);
      fs.writeFileSync(
        file,
        `${pem}\n-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n`,
      );
      const key = await run({ caCertificateFile: file });
      expect(key.error?.message).to.match(/caCertificateFile` .* holds a private key/);
      expect(key.error?.message).not.to.contain("MIIE");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    const plain = await run();
    for (const c of plain.ofType(CONTAINER)) {
      expect(JSON.stringify(c.inputs.envs ?? [])).not.to.contain("AWS_CA_BUNDLE");
    }
  });

  it("refuses a secret key with a line break, naming the key, before creating anything", async function () {
    const result = await run({ secretAccessKey: { secure: "line1\nline2" } });
    expect(result.error?.message).to.match(
      /edms:media\.secretAccessKey` is a value with a line break/,
    );
    expect(result.error?.message).not.to.contain("line1");
  });
});
