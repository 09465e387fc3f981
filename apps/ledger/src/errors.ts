/** How the finance CLI fails without having checked anything: exit 2, one line, no stack. */

/** A mistake in the command line: the message, then the usage. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** The command line is fine but names something the sources do not hold (an unknown account, say). */
export class NotFoundError extends Error {
  override name = 'NotFoundError';
}
