import { expect } from "chai";
import * as path from "path";
import {
  importCycles,
  linesOf,
  longFunctions,
  PRODUCT_DIRS,
  REPO_ROOT,
  sourceFiles,
} from "../../harness/codebase";

const MAX_FILE_LINES = 400;
const MAX_FUNCTION_LINES = 60;

describe("the code's shape", () => {
  const files = sourceFiles();

  it("reads the product's sources (the rules below are not vacuous)", () => {
    for (const dir of PRODUCT_DIRS) {
      expect(files.some((f) => f.startsWith(path.join(REPO_ROOT, dir, path.sep)))).to.equal(
        true,
        dir,
      );
    }
  });

  it(`has no import cycle in ${PRODUCT_DIRS.join(", ")} (type-only imports included)`, () => {
    expect(importCycles(files)).to.deep.equal([]);
  });

  it("finds a cycle when there is one (the check can fail)", () => {
    const cyclic = sourceFiles(["tests/harness/fixtures/cycle"]);
    expect(importCycles(cyclic)).to.have.length(1);
  });

  it(`has no file over ${MAX_FILE_LINES} lines`, () => {
    const over = files
      .map((f) => ({ where: path.relative(REPO_ROOT, f), lines: linesOf(f) }))
      .filter((f) => f.lines > MAX_FILE_LINES);
    expect(over).to.deep.equal([]);
  });

  it(`has no function over ${MAX_FUNCTION_LINES} lines`, () => {
    expect(files.flatMap((f) => longFunctions(f, MAX_FUNCTION_LINES))).to.deep.equal([]);
  });
});
