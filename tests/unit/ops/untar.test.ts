import { expect } from "chai";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { MEDIA_EXTRACT } from "../../../ops/backup/plainFormat";

describe("a hostile media.tar (issue 20): unpacked without its owners or setuid/setgid bits", function () {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "edms-untar-"));
    const tree = path.join(dir, "tree");
    fs.mkdirSync(path.join(tree, "docs"), { recursive: true });
    fs.writeFileSync(path.join(tree, "docs", "run-me"), "#!/bin/sh\nid\n");
    fs.chmodSync(path.join(tree, "docs", "run-me"), 0o6755);
    fs.chmodSync(path.join(tree, "docs"), 0o2775);
    // A foreign owner recorded in the archive (uid 4242), as a hostile folder would carry.
    execFileSync("tar", [
      "-C",
      tree,
      "--owner=4242",
      "--group=4242",
      "--numeric-owner",
      "-cf",
      path.join(dir, "media.tar"),
      ".",
    ]);
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("the operator's command from howToRestore, run by root as here, keeps neither", function () {
    const listing = execFileSync("tar", ["-tvf", path.join(dir, "media.tar")], {
      encoding: "utf8",
    });
    // The archive itself is hostile: the check below is not vacuous.
    expect(listing).to.match(/-rwsr-sr-x 4242\/4242 .*run-me/);
    execFileSync("sh", ["-c", MEDIA_EXTRACT.replace(/MEDIA_ROOT/g, "restored")], { cwd: dir });
    for (const file of ["restored/docs", "restored/docs/run-me"]) {
      const stat = fs.statSync(path.join(dir, file));
      expect(stat.mode & 0o6000, `${file}: setuid/setgid`).to.equal(0);
      expect(stat.uid, `${file}: owner`).to.equal(process.getuid!());
    }
    expect(fs.readFileSync(path.join(dir, "restored/docs/run-me"), "utf8")).to.contain("id");
  });
});
