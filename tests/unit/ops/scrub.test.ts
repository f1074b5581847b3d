/**
 * What edms-ops prints never holds a secret it was handed: a deploy hook's output reaches Pulumi's and the
 * CI's logs when the hook fails (whatever its logging setting), and some lines are other programs' output
 * (a release's migrate, a tool's error).
 */
import { expect } from "chai";
import { spawnSync } from "child_process";
import * as path from "path";
import { secretValues } from "../../../ops/core/log";

const ROOT = path.resolve(__dirname, "../../..");

describe("secrets scrubbed from edms-ops' output", function () {
  it("every secret variable's value, the off-host backend's credentials and a repository's password too, longest first; settings and short values are left", function () {
    expect(
      secretValues({
        EDMS_DJANGO_SECRET_KEY: "dj-key-0123456789",
        EDMS_RESTIC_PASSWORD: "restic-pw-abc",
        EDMS_OFFSITE_ENV: JSON.stringify({
          AWS_SECRET_ACCESS_KEY: "aws/secret+key",
          AWS_DEFAULT_REGION: "eu-west-1",
          OS_INTERFACE: "public",
          N: "1",
        }),
        EDMS_OFFSITE_REPOSITORY: "rest:https://edms:rest:pw@5b1f@backup.example:8000/edms/",
        EDMS_OFFSITE_DELETE_REPOSITORY: "s3:s3.example/bucket?token=abcdef123",
        EDMS_REDIS_PASSWORD: "short",
        EDMS_STACK: "production-stack-name",
        EDMS_OFFSITE_DELETE_ENV: "not json",
      }),
    ).to.deep.equal([
      "dj-key-0123456789",
      "token=abcdef123",
      "aws/secret+key",
      "restic-pw-abc",
      "rest:pw@5b1f",
    ]);
  });

  it("progress, say, warn and the error line print [secret] in their place", function () {
    const script = [
      'const log = require("./ops/core/log");',
      'log.progress("migrate said: SECRET_KEY=dj-key-0123456789 and dj-key-0123456789");',
      'log.say("repository s3:host/b?key=aws/secret+key");',
      'log.warn("restic: wrong password restic-pw-abc");',
      'log.progress("vanished: evil\\u001b[31m\\rname\\u009b\\u202e.pdf\\tand\\r\\nnext");',
      'require("./ops/cli").main(["node", "edms-ops", "--no-such-flag-restic-pw-abc"]);',
    ].join("\n");
    const run = spawnSync(
      process.execPath,
      ["-r", "ts-node/register/transpile-only", "-e", script],
      {
        cwd: ROOT,
        encoding: "utf8",
        env: {
          ...process.env,
          EDMS_DJANGO_SECRET_KEY: "dj-key-0123456789",
          EDMS_RESTIC_PASSWORD: "restic-pw-abc",
          EDMS_OFFSITE_ENV: JSON.stringify({ AWS_SECRET_ACCESS_KEY: "aws/secret+key" }),
        },
      },
    );
    const out = `${run.stdout}${run.stderr}`;
    expect(out).to.contain("migrate said: SECRET_KEY=[secret] and [secret]");
    expect(out).to.contain("repository s3:host/b?key=[secret]");
    expect(out).to.contain("warning: restic: wrong password [secret]");
    // No control character from a name reaches the operator's terminal; tab and newline stay.
    expect(out).to.contain("vanished: evil?[31m?name??.pdf\tand\nnext");
    for (const secret of ["dj-key-0123456789", "restic-pw-abc", "aws/secret+key"]) {
      expect(out, secret).not.to.contain(secret);
    }
  });
});
