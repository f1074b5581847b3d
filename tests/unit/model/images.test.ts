import { expect } from "chai";
import {
  deployedReference,
  digestOf,
  isContentId,
  pinnedByDigest,
  recordedDigest,
  releaseReference,
  stackImages,
  unpinnedWarning,
} from "../../../model/images";
import { ConfigError, validateSettings } from "../../../model/settings";

const DIGEST = `sha256:${"ab".repeat(32)}`;

describe("images by digest (model/images.ts)", function () {
  it("a reference is pinned only by @sha256: and 64 lowercase hex digits at its end", function () {
    expect(pinnedByDigest(`postgres:16@${DIGEST}`)).to.equal(true);
    expect(pinnedByDigest(`registry.example.com:5000/postgres@${DIGEST}`)).to.equal(true);
    for (const ref of [
      "postgres:16",
      `postgres:16@sha256:${"ab".repeat(31)}`,
      `postgres:16@sha256:${"AB".repeat(32)}`,
      `postgres@${DIGEST}:16`,
      DIGEST,
    ]) {
      expect(pinnedByDigest(ref), ref).to.equal(false);
    }
    expect(isContentId(DIGEST)).to.equal(true);
    expect(isContentId(`postgres@${DIGEST}`)).to.equal(false);
    expect(digestOf(`postgres:16@${DIGEST}`)).to.equal(DIGEST);
    expect(digestOf("postgres:16")).to.equal(undefined);
  });

  it("edms:releaseDigest pins the configured release, never another version", function () {
    const settings = validateSettings("s", {
      environment: "staging",
      version: "2.0.0",
      releaseDigest: DIGEST,
    });
    expect(releaseReference(settings)).to.equal(`edms-sample/backend:2.0.0@${DIGEST}`);
    expect(releaseReference(settings, "2.0.0")).to.equal(`edms-sample/backend:2.0.0@${DIGEST}`);
    expect(releaseReference(settings, "1.0.0")).to.equal("edms-sample/backend:1.0.0");
    const unpinned = validateSettings("s", { environment: "staging", version: "2.0.0" });
    expect(releaseReference(unpinned)).to.equal("edms-sample/backend:2.0.0");
  });

  it("edms:releaseDigest must be sha256: and 64 lowercase hex digits", function () {
    for (const releaseDigest of [DIGEST.toUpperCase(), "ab".repeat(32), `${DIGEST}0`, "latest"]) {
      try {
        validateSettings("s", { environment: "dev", version: "1.0.0", releaseDigest });
        expect.fail(`accepted ${releaseDigest}`);
      } catch (err) {
        expect(err).to.be.instanceOf(ConfigError);
        expect((err as ConfigError).problems.join()).to.match(
          /`edms:releaseDigest` must be `sha256:` and 64 lowercase hex digits.*docker buildx imagetools inspect/,
        );
      }
    }
  });

  it("a recorded reference gives its digest back only for the same image and version", function () {
    const ref = `edms-sample/backend:1.0.0@${DIGEST}`;
    expect(recordedDigest("edms-sample/backend", "1.0.0", ref)).to.equal(DIGEST);
    expect(recordedDigest("edms-sample/backend", "2.0.0", ref)).to.equal(undefined);
    expect(recordedDigest("registry.example.com/edms", "1.0.0", ref)).to.equal(undefined);
    expect(recordedDigest("edms-sample/backend", "1.0.0", "edms-sample/backend:1.0.0")).to.equal(
      undefined,
    );
    expect(recordedDigest("edms-sample/backend", "1.0.0", undefined)).to.equal(undefined);
  });

  it("a release runs by the digest its newest pinned deployment recorded: the host has no tag of it", function () {
    const OLD = `sha256:${"cd".repeat(32)}`;
    const NEW = `sha256:${"ef".repeat(32)}`;
    const settings = {
      backendImage: "edms-sample/backend",
      version: "2.0.0",
      releaseDigest: DIGEST,
    };
    const history = [
      { version: "1.0.0", reference: `edms-sample/backend:1.0.0@${OLD}` },
      { version: "1.0.0", reference: `edms-sample/backend:1.0.0@${NEW}` },
      { version: "2.0.0", reference: `edms-sample/backend:2.0.0@${DIGEST}` },
      // Another image's record, and a record from before references were kept: neither counts.
      { version: "1.0.0", reference: `registry.example.com/other:1.0.0@${OLD}` },
      { version: "1.0.0" },
    ];
    expect(deployedReference(settings, "1.0.0", history)).to.equal(
      `edms-sample/backend:1.0.0@${NEW}`,
    );
    // The configured release never deployed: its configured reference. Deployed by another digest (a
    // rebuilt release configured, not deployed yet): the one it ran by.
    expect(deployedReference(settings, "2.0.0", [])).to.equal(
      `edms-sample/backend:2.0.0@${DIGEST}`,
    );
    expect(
      deployedReference(settings, "2.0.0", [
        { version: "2.0.0", reference: `edms-sample/backend:2.0.0@${OLD}` },
      ]),
    ).to.equal(`edms-sample/backend:2.0.0@${OLD}`);
    // Pinned once, then deployed again by its tag (the pin dropped): it ran by the tag last.
    expect(
      deployedReference(settings, "1.0.0", [
        ...history,
        { version: "1.0.0", reference: "edms-sample/backend:1.0.0" },
      ]),
    ).to.equal("edms-sample/backend:1.0.0");
    // Nothing pinned it: its tag, as before.
    expect(deployedReference(settings, "0.9.0", history)).to.equal("edms-sample/backend:0.9.0");
    expect(
      deployedReference(settings, "1.0.0", [
        { version: "1.0.0", reference: "edms-sample/backend:1.0.0" },
      ]),
    ).to.equal("edms-sample/backend:1.0.0");
  });

  it("lists every image a stack pulls, the proxy's and the scheduler's only when they run", function () {
    const keys = (raw: Record<string, unknown>) =>
      stackImages(validateSettings("s", { environment: "staging", version: "2.0.0", ...raw })).map(
        (i) => i.key,
      );
    expect(keys({})).to.deep.equal([
      "edms:releaseDigest",
      "edms:postgresImage",
      "edms:redisImage",
      "edms:proxy.image",
      "edms:backup.image",
      "edms:backup.schedulerImage",
    ]);
    expect(keys({ proxy: { enabled: false }, backup: { schedule: "off" } })).to.deep.equal([
      "edms:releaseDigest",
      "edms:postgresImage",
      "edms:redisImage",
      "edms:backup.image",
    ]);
  });

  it("warns once, naming only the images still pulled by tag", function () {
    const settings = validateSettings("dev", {
      environment: "dev",
      version: "1.0.0",
      releaseDigest: DIGEST,
      redisImage: `redis:7@${DIGEST}`,
      backup: { image: `restic/restic:0.18.0@${DIGEST}` },
      proxy: { enabled: false },
    });
    const warning = unpinnedWarning(settings) ?? "";
    expect(warning).to.match(/^Stack dev pulls 1 image\(s\) by tag/);
    expect(warning).to.contain("postgres:16 (`edms:postgresImage`)");
    expect(warning).not.to.contain("redis:7");
    const all = validateSettings("dev", {
      environment: "dev",
      version: "1.0.0",
      releaseDigest: DIGEST,
      postgresImage: `postgres:16@${DIGEST}`,
      redisImage: `redis:7@${DIGEST}`,
      backup: { image: `restic/restic:0.18.0@${DIGEST}` },
      proxy: { enabled: false },
    });
    expect(unpinnedWarning(all)).to.equal(undefined);
  });
});
