// flaky: activities that fail on purpose, to exercise retry policies.
//
// * flaky {"succeed_on_attempt": int, "retry_delay_ms": int | null}
// * reject {"reason": string}          -> non-retryable InvalidOrder
// * fail-typed {"error_type": string}  -> retryable failure of that type
import { ApplicationError, info } from 'wharf-activity';

function field(arg, key, kind, optional = false) {
  const value = arg?.[key];
  if ((value === undefined || value === null) && optional) return null;
  const ok = kind === 'int' ? Number.isInteger(value) : typeof value === kind;
  if (!ok) throw ApplicationError.nonRetryable(`argument field '${key}' must be a ${kind}`, 'InvalidArgument');
  return value;
}

export const activities = {
  flaky(arg) {
    const succeedOn = field(arg, 'succeed_on_attempt', 'int');
    const delayMs = field(arg, 'retry_delay_ms', 'int', true);
    const { attempt } = info();
    if (attempt < succeedOn) {
      throw new ApplicationError(`attempt ${attempt} failed`, {
        type: 'FlakyError',
        details: [{ attempt }],
        nextRetryDelay: delayMs ?? undefined,
      });
    }
    return { attempt };
  },

  reject(arg) {
    const reason = field(arg, 'reason', 'string');
    throw ApplicationError.nonRetryable(`order rejected: ${reason}`, 'InvalidOrder', { reason });
  },

  'fail-typed'(arg) {
    const errorType = field(arg, 'error_type', 'string');
    throw ApplicationError.retryable(`failed with ${errorType}`, errorType);
  },
};
