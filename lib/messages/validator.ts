import type { FastifySchemaCompiler } from 'fastify'
import { InvalidMessageError, InvalidOptionError } from '../errors'

/** Checks a message against a schema: returns the (possibly coerced) message, or throws `INVALID_MESSAGE`. */
export type MessageValidator = (message: unknown) => unknown

interface ValidationIssue {
  instancePath?: string
  message?: string
}

type CompiledFunction = ((data: unknown) => unknown) & { errors?: ValidationIssue[] | null }

/**
 * What a failed check tells the client: where and what (`/text must be string`), from the
 * validator's errors, never the value itself.
 */
function describe (issues: ValidationIssue[] | null | undefined): string {
  const first = issues?.[0]
  if (first === undefined) return 'schema validation failed'
  return `${first.instancePath || '(message)'} ${String(first.message)}`
}

/**
 * Compiles a message schema with the app's validator compiler (Fastify's own, so the app's Ajv
 * settings, plugins and shared schemas apply — or a compiler the app set with
 * `setValidatorCompiler`). The result is read the way Fastify reads a body validator's: `false`
 * with `errors`, `{ error }`, or `{ value }` replacing the message.
 */
export function compileMessageSchema (compile: FastifySchemaCompiler<unknown>, schema: unknown, url: string, where: string): MessageValidator {
  let validate: CompiledFunction
  try {
    validate = compile({ schema: schema as object, method: 'GET', url, httpPart: 'body' }) as CompiledFunction
  } catch (err) {
    throw new InvalidOptionError(`${where} does not compile: ${(err as Error).message}`)
  }
  return (message) => {
    const result = validate(message) as { error?: Error, value?: unknown } | boolean
    if (result === false) throw new InvalidMessageError(describe(validate.errors))
    if (typeof result !== 'object' || result === null) return message
    // A custom compiler's error text is the app's own wording (as Fastify sends it for a body).
    if (result.error !== undefined) throw new InvalidMessageError(result.error.message)
    return 'value' in result ? result.value : message
  }
}
