/**
 * What a restore or a drill needs on each filesystem before it starts, from `df -Pk` output: places on one
 * filesystem add up, and a refusal names how much, where and what goes there.
 */
import { expect } from "chai";
import {
  databaseRoomNeeded,
  DEFAULT_MAX_WAL,
  mediaRoomNeeded,
  parseDf,
  shortfalls,
} from "../../../ops/backup/space";

const MiB = 1024 * 1024;
const df = (device: string, blocks: number, availableKiB: number, mount: string) =>
  `Filesystem 1024-blocks Used Available Capacity Mounted on\n${device} ${blocks} 0 ${availableKiB} 1% ${mount}\n`;

describe("free space for a restore or a drill", function () {
  it("a database needs twice its dump (heap and indexes) plus its WAL, capped at max_wal_size", function () {
    expect(databaseRoomNeeded(100 * MiB, DEFAULT_MAX_WAL)).to.equal(464 * MiB);
    expect(databaseRoomNeeded(10_000 * MiB, DEFAULT_MAX_WAL)).to.equal(21_088 * MiB);
  });

  it("media need only what the volume does not hold yet", function () {
    expect(mediaRoomNeeded(500 * MiB, 400 * MiB)).to.equal(164 * MiB);
    expect(mediaRoomNeeded(100 * MiB, 400 * MiB)).to.equal(64 * MiB);
    expect(mediaRoomNeeded(0, 400 * MiB)).to.equal(0);
  });

  it("reads device, size and free bytes from df -Pk; no df, no verdict", function () {
    expect(parseDf(df("/dev/vda", 1000, 300, "/data"))).to.deep.equal({
      id: "/dev/vda:1000",
      available: 300 * 1024,
    });
    expect(parseDf("sh: df: not found")).to.equal(null);
  });

  it("places on one filesystem add up; another filesystem is judged alone", function () {
    const pg = { name: "the postgres volume p", what: "db", needed: 200 * MiB };
    const media = { name: "the media volume m", what: "media", needed: 200 * MiB };
    const shared = df("/dev/vda", 9_999_999, 300 * 1024, "/x");
    expect(
      shortfalls([
        { ...pg, df: shared },
        { ...media, df: shared },
      ]),
    ).to.deep.equal([
      "needs about 400.0 MiB on the filesystem of the postgres volume p (200.0 MiB: db) and the media volume m (200.0 MiB: media), which has 300.0 MiB free",
    ]);
    expect(
      shortfalls([
        { ...pg, df: shared },
        { ...media, df: df("tmpfs", 1000, 300 * 1024, "/m") },
      ]),
    ).to.deep.equal([]);
    expect(shortfalls([{ ...pg, df: "no df here" }])).to.deep.equal([]);
  });
});
