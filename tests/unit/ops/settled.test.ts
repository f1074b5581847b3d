/** allSettledOrThrow: reads asked at once answer as one, with nothing left running past a failure. */
import { expect } from "chai";
import { allSettledOrThrow, failure, refuse } from "../../../ops/core/errors";

const later = <T>(ms: number, value: () => T) =>
  new Promise<T>((resolve, reject) =>
    setTimeout(() => {
      try {
        resolve(value());
      } catch (err) {
        reject(err as Error);
      }
    }, ms),
  );

describe("allSettledOrThrow", function () {
  it("gives every value in the order asked, plain values too", async function () {
    const [a, b, c] = await allSettledOrThrow([
      later(20, () => 1),
      Promise.resolve("x"),
      undefined,
    ]);
    expect([a, b, c]).to.deep.equal([1, "x", undefined]);
  });

  it("throws the first rejection in the order given, not the first to happen", async function () {
    const refused = refuse("not enough room.", "Free some.");
    const caught = await allSettledOrThrow([
      later(40, () => {
        throw refused;
      }),
      later(0, () => {
        throw failure("the marker could not be read.", "Retry.");
      }),
    ]).catch((err: Error) => err);
    expect(caught).to.equal(refused);
  });

  it("answers only once every promise has settled, a failure included", async function () {
    let finished = false;
    const caught = await allSettledOrThrow([
      Promise.reject(failure("read failed.", "Retry.")),
      later(40, () => {
        finished = true;
      }),
    ]).catch((err: Error) => err);
    expect((caught as Error).message).to.contain("read failed.");
    expect(finished, "the slower branch still ran when the call answered").to.equal(true);
  });
});
