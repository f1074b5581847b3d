/**
 * Reads the project's own TypeScript sources with the compiler API, for the unit tests that keep the code's
 * shape honest: the import graph (type-only imports included) and the size of files and functions.
 */
import * as fs from "fs";
import * as path from "path";
import * as ts from "typescript";

export const REPO_ROOT = path.resolve(__dirname, "../..");
/** The product's code: what the shape rules apply to (tests and scripts are not held to them). */
export const PRODUCT_DIRS = ["components", "model", "ops", "policy"];

export function sourceFiles(dirs: readonly string[] = PRODUCT_DIRS): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        if (entry.name !== "node_modules" && entry.name !== "tests") {
          walk(full);
        }
      } else if (entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts")) {
        out.push(full);
      }
    }
  };
  dirs.forEach((d) => walk(path.join(REPO_ROOT, d)));
  return out.sort();
}

function parse(file: string): ts.SourceFile {
  return ts.createSourceFile(file, fs.readFileSync(file, "utf8"), ts.ScriptTarget.ES2022, true);
}

function resolveRelative(from: string, spec: string): string | undefined {
  const base = path.resolve(path.dirname(from), spec);
  return [`${base}.ts`, path.join(base, "index.ts"), base].find(
    (p) => fs.existsSync(p) && fs.statSync(p).isFile(),
  );
}

/** Every relative module a file imports or re-exports, type-only imports included. */
export function importsOf(file: string): string[] {
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    const spec =
      (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) &&
      node.moduleSpecifier &&
      ts.isStringLiteral(node.moduleSpecifier)
        ? node.moduleSpecifier.text
        : ts.isImportTypeNode(node) &&
            ts.isLiteralTypeNode(node.argument) &&
            ts.isStringLiteral(node.argument.literal)
          ? node.argument.literal.text
          : ts.isCallExpression(node) &&
              node.arguments.length === 1 &&
              ts.isStringLiteral(node.arguments[0]) &&
              (node.expression.kind === ts.SyntaxKind.ImportKeyword ||
                (ts.isIdentifier(node.expression) && node.expression.text === "require"))
            ? (node.arguments[0] as ts.StringLiteral).text
            : undefined;
    if (spec?.startsWith(".")) {
      const target = resolveRelative(file, spec);
      if (target) {
        found.push(target);
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(parse(file));
  return [...new Set(found)];
}

/** Strongly connected components with more than one file (or a file importing itself): the cycles. */
export function importCycles(files: readonly string[]): string[][] {
  const graph = new Map(files.map((f) => [f, importsOf(f)]));
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  let next = 0;
  const connect = (v: string): void => {
    index.set(v, next);
    low.set(v, next);
    next += 1;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        connect(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || (graph.get(v) ?? []).includes(v)) {
        cycles.push(component.map((f) => path.relative(REPO_ROOT, f)).sort());
      }
    }
  };
  for (const f of graph.keys()) {
    if (!index.has(f)) {
      connect(f);
    }
  }
  return cycles;
}

export interface Oversized {
  readonly where: string;
  readonly lines: number;
}

export function linesOf(file: string): number {
  return fs.readFileSync(file, "utf8").replace(/\n$/, "").split("\n").length;
}

function functionName(node: ts.Node, source: ts.SourceFile): string {
  const named = (node as { name?: ts.Node }).name;
  if (named) {
    return named.getText(source);
  }
  if (ts.isConstructorDeclaration(node)) {
    return "constructor";
  }
  const parent = node.parent;
  if (ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent)) {
    return parent.name.getText(source);
  }
  if (ts.isCallExpression(parent)) {
    return `(callback in ${functionName(parent.parent, source)})`;
  }
  return "(anonymous)";
}

/** Functions, methods, constructors and arrow functions longer than `limit` lines, their whole span. */
export function longFunctions(file: string, limit: number): Oversized[] {
  const source = parse(file);
  const out: Oversized[] = [];
  const visit = (node: ts.Node): void => {
    if (
      ts.isFunctionDeclaration(node) ||
      ts.isMethodDeclaration(node) ||
      ts.isConstructorDeclaration(node) ||
      ts.isArrowFunction(node) ||
      ts.isFunctionExpression(node) ||
      ts.isGetAccessor(node) ||
      ts.isSetAccessor(node)
    ) {
      const start = source.getLineAndCharacterOfPosition(node.getStart(source)).line;
      const end = source.getLineAndCharacterOfPosition(node.getEnd()).line;
      const lines = end - start + 1;
      if (lines > limit) {
        const where = `${path.relative(REPO_ROOT, file)}:${start + 1} ${functionName(node, source)}`;
        out.push({ where, lines });
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return out;
}
