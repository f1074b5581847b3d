import { expect } from "chai";
import { ConfigError, validateSettings } from "../../model/settings";

/** The problems validation reports for `raw` on a stack of `stack`'s environment; [] when it passes. */
export function settingsProblems(raw: Record<string, unknown>, stack = "staging"): string[] {
  try {
    validateSettings(stack, { environment: stack, version: "1", ...raw });
    return [];
  } catch (err) {
    expect(err).to.be.instanceOf(ConfigError);
    return [...(err as ConfigError).problems];
  }
}
