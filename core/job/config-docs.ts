// Renders the job schema as commented YAML: every field with its default and
// its description. `tunefleet config` prints it; docs/config.md embeds it.
import { z } from 'zod';
import { jobSchema } from './config';

function unwrap(t: z.ZodTypeAny): z.ZodTypeAny {
  return t instanceof z.ZodDefault || t instanceof z.ZodNullable ? unwrap(t._def.innerType) : t;
}

function render(shape: z.ZodRawShape, defaults: Record<string, unknown>, indent: string): string[] {
  const lines: string[] = [];
  for (const [key, field] of Object.entries(shape)) {
    const inner = unwrap(field);
    const comment = field.description ? `  # ${field.description}` : '';
    if (inner instanceof z.ZodObject && defaults[key] !== null) {
      lines.push(`${indent}${key}:${comment}`, ...render(inner.shape, defaults[key] as Record<string, unknown>, indent + '  '));
    } else {
      const value = JSON.stringify(defaults[key]); // JSON is YAML's flow style
      lines.push(`${indent}${key}: ${value}${comment}`);
    }
  }
  return lines;
}

export function defaultsYaml(): string {
  return render(jobSchema.shape, jobSchema.parse({}), '').join('\n') + '\n';
}
