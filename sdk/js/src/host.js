// The seam to the host: what the SDK needs of the `aileron:operator/context`
// imports as componentize-js presents them (camelCase functions; a `result`
// whose `err` is thrown as an Error carrying the reason in `payload`), so the
// component and the TestHost are read the same way.

/** The WIT `level` enum. */
export const LEVELS = Object.freeze(['debug', 'info', 'warn', 'error']);

/** The reason a host import refused a call, from what it threw. */
export function hostReason(error) {
  if (typeof error?.payload === 'string') return error.payload;
  if (error instanceof Error) return error.message;
  return String(error);
}

/** The functions a host must have, checked once per try so a gap is named. */
export const HOST_FUNCTIONS = Object.freeze([
  'log',
  'xcomPush',
  'xcomPull',
  'variable',
  'connection',
  'httpWithConnection',
]);
