import { expect } from "chai";
import * as fs from "fs";
import * as path from "path";
import { REPO_ROOT, sourceFiles } from "../../harness/codebase";

// A repository path as docs, messages and generated files name it: a known top folder, then a file name.
const PATH =
  /\b((?:components|model|ops|policy|tests|scripts|images|docs|sample-app|\.github)\/[\w./-]*\w\.(?:ts|js|sh|md|yml|yaml|json|py|cfg))\b/g;

function namedPaths(text: string): string[] {
  return [...text.matchAll(PATH)].map((m) => m[1]);
}

function stale(files: readonly string[]): string[] {
  return files.flatMap((file) =>
    namedPaths(fs.readFileSync(file, "utf8"))
      .filter((named) => !named.includes("*") && !fs.existsSync(path.join(REPO_ROOT, named)))
      .map((named) => `${path.relative(REPO_ROOT, file)} names ${named}`),
  );
}

describe("file names that docs, messages and generated files give", () => {
  it("finds the paths it checks (the check can fail)", () => {
    expect(namedPaths("see components/nowhere.ts and `model/proxy.ts`.")).to.deep.equal([
      "components/nowhere.ts",
      "model/proxy.ts",
    ]);
    expect(stale([path.join(REPO_ROOT, "tests/harness/fixtures/stale.md")])).to.have.length(1);
  });

  it("exist: README, docs/ and every source file of the product", () => {
    const docs = [
      "README.md",
      ...fs.readdirSync(path.join(REPO_ROOT, "docs")).map((f) => `docs/${f}`),
    ]
      .filter((f) => f.endsWith(".md"))
      .map((f) => path.join(REPO_ROOT, f));
    expect(stale([...docs, ...sourceFiles()])).to.deep.equal([]);
  });
});
