/** What the program, edms-ops, the policy pack and the tests share. Nothing here imports @pulumi. */
export * from "./containers";
export * from "./hooks";
export * from "./https";
export * from "./images";
export * from "./labels";
export * from "./protection";
export * from "./proxy";
export * from "./schedule";
export * from "./settings";
export * from "./stackFile";
export * from "./shell";
