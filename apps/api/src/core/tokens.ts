/** Injection tokens for the plain (non-Nest) core the HTTP layer is wired to. */
export const CORE = Symbol('Core');
export const CONFIG = Symbol('AppConfig');
export const LOGGER = Symbol('Logger');
