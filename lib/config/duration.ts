// A duration in the config: {value: 24, unit: h}, or the same written as a
// string ("24h", "5 m", "500ms"), which is what people type first. A string
// that is not one gets a message saying what a duration looks like (zod's
// own was "Expected object, received string").
import { z } from 'zod';

export function duration<const U extends readonly [string, ...string[]]>(units: U, value: z.ZodNumber, defaultValue: number, defaultUnit: U[number]) {
  const shape = z.object({ value: value.default(defaultValue), unit: z.enum(units).default(defaultUnit as never) }).strict();
  const pattern = new RegExp(`^\\s*(\\d+(?:\\.\\d+)?)\\s*(${units.join('|')})\\s*$`);
  return z.preprocess(
    (input, ctx) => {
      if (typeof input !== 'string') return input;
      const m = pattern.exec(input);
      if (m) return { value: Number(m[1]), unit: m[2] };
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        message: `${JSON.stringify(input)} is not a duration: a number and a unit (${units.join(', ')}), e.g. "${defaultValue}${defaultUnit}", or {value: ${defaultValue}, unit: ${defaultUnit}}`,
      });
      return z.NEVER;
    },
    shape.default({} as z.input<typeof shape>),
  );
}
