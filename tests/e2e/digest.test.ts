/**
 * A release pinned by digest, against a real registry (Debian's docker-registry, `edms-test/registry:2.8`):
 * the reference the program and edms-ops build (`releaseReference`: `<backendImage>:<version>@<digest>`)
 * resolves and runs, a digest the registry does not hold is refused, and the digest wins over the tag,
 * which is why a digest is never left on another version. No stack is deployed.
 */
import { execFile } from "child_process";
import { expect } from "chai";
import { deployedReference, releaseReference } from "../../model/images";
import { validateSettings } from "../../model/settings";

const REGISTRY = "e2e-digest-registry";

function docker(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile("docker", args, { maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

async function ok(args: string[]): Promise<string> {
  const result = await docker(args);
  expect(result.code, `docker ${args.join(" ")}: ${result.stderr}`).to.equal(0);
  return result.stdout.trim();
}

const imageId = (ref: string) => ok(["image", "inspect", "--format", "{{.Id}}", ref]);

describe("e2e: a release pinned by digest, from a real registry", function () {
  this.timeout(600_000);
  let repository = "";
  const digests: Record<string, string> = {};
  const ids: Record<string, string> = {};

  /** Every local name of the registry's repository (tags and digests), so a pull must ask the registry. */
  const forgetLocalNames = async () => {
    const names = (
      await ok(["image", "ls", "--digests", "--format", "{{.Repository}} {{.Tag}} {{.Digest}}"])
    )
      .split("\n")
      .map((line) => line.split(" "))
      .filter(([repo]) => repo === repository)
      .flatMap(([repo, tag, digest]) => [
        ...(tag !== "<none>" ? [`${repo}:${tag}`] : []),
        ...(digest !== "<none>" ? [`${repo}@${digest}`] : []),
      ]);
    if (names.length) {
      await docker(["rmi", ...names]);
    }
  };

  before(async function () {
    await docker(["rm", "-f", "-v", REGISTRY]);
    await ok([
      ...["run", "-d", "--name", REGISTRY, "--label", "edms.stack=e2e-digest"],
      ...["-p", "127.0.0.1::5000", "edms-test/registry:2.8"],
    ]);
    const port = (await ok(["port", REGISTRY, "5000/tcp"])).split(":").pop();
    repository = `127.0.0.1:${port}/edms-sample/backend`;
    for (const version of ["1.0.0", "2.0.0"]) {
      ids[version] = await imageId(`edms-sample/backend:${version}`);
      await ok(["tag", `edms-sample/backend:${version}`, `${repository}:${version}`]);
      // The registry may take a moment to listen: the first push is retried.
      let pushed = await docker(["push", `${repository}:${version}`]);
      for (let i = 0; pushed.code !== 0 && i < 20; i += 1) {
        await new Promise((resolve) => setTimeout(resolve, 500));
        pushed = await docker(["push", `${repository}:${version}`]);
      }
      expect(pushed.code, pushed.stderr).to.equal(0);
      digests[version] = /digest: (sha256:[0-9a-f]{64})/.exec(pushed.stdout)?.[1] ?? "";
      expect(digests[version], pushed.stdout).to.match(/^sha256:[0-9a-f]{64}$/);
    }
    await forgetLocalNames();
  });

  after(async function () {
    if (repository) {
      await forgetLocalNames();
    }
    await docker(["rm", "-f", "-v", REGISTRY]);
  });

  it("the configured release's reference resolves by its digest and runs that release's content", async function () {
    const settings = validateSettings("digest", {
      environment: "staging",
      version: "1.0.0",
      backendImage: repository,
      releaseDigest: digests["1.0.0"],
    });
    const reference = releaseReference(settings);
    expect(reference).to.equal(`${repository}:1.0.0@${digests["1.0.0"]}`);
    expect((await docker(["image", "inspect", reference])).code, "not pulled yet").not.to.equal(0);
    await ok(["pull", reference]);
    expect(await imageId(reference)).to.equal(ids["1.0.0"]);
    // Pulled by its digest alone: the host has no tag of it. Once 2.0.0 is configured, a drill of a 1.0.0
    // backup names it by the digest its deployment recorded.
    expect((await docker(["image", "inspect", `${repository}:1.0.0`])).code).not.to.equal(0);
    const later = validateSettings("digest", {
      environment: "staging",
      version: "2.0.0",
      backendImage: repository,
      releaseDigest: digests["2.0.0"],
    });
    const deployed = deployedReference(later, "1.0.0", [{ version: "1.0.0", reference }]);
    expect(await imageId(deployed)).to.equal(ids["1.0.0"]);
    await ok(["run", "--rm", "--network", "none", reference, "true"]);
    // Another version gets its tag, never this digest.
    expect(releaseReference(settings, "2.0.0")).to.equal(`${repository}:2.0.0`);
  });

  it("a digest the registry does not hold is refused, whatever the tag", async function () {
    const wrong = `${repository}:1.0.0@sha256:${"0".repeat(64)}`;
    const pulled = await docker(["pull", wrong]);
    expect(pulled.code).not.to.equal(0);
    expect(pulled.stderr).to.match(/manifest unknown|not found/i);
    expect((await docker(["run", "--rm", "--pull", "never", wrong, "true"])).code).not.to.equal(0);
  });

  it("the digest wins over the tag: 1.0.0 with 2.0.0's digest is 2.0.0's content", async function () {
    const mislabelled = `${repository}:1.0.0@${digests["2.0.0"]}`;
    await ok(["pull", mislabelled]);
    expect(await imageId(mislabelled)).to.equal(ids["2.0.0"]);
    expect(ids["2.0.0"]).not.to.equal(ids["1.0.0"]);
  });
});
