import { checkFunction, fail, isPlainObject } from './check'
import type { ManagementApiOptions, ResolvedManagementApi } from './types'

export const DEFAULT_MANAGEMENT_PREFIX = '/@connections'

/** Validates `managementApi`; undefined when the REST surface is off. */
export function resolveManagementApi (input: unknown): ResolvedManagementApi | undefined {
  if (input === undefined || input === false) return undefined
  if (!isPlainObject(input)) fail('managementApi must be an object with an authorize function')
  const unknown = Object.keys(input).find((key) => key !== 'prefix' && key !== 'authorize')
  if (unknown !== undefined) fail(`unknown option "managementApi.${unknown}"`)
  const { prefix = DEFAULT_MANAGEMENT_PREFIX, authorize } = input
  if (authorize === undefined) fail('managementApi.authorize is required: the REST surface is never open by default')
  checkFunction(authorize, 'managementApi.authorize')
  if (typeof prefix !== 'string' || !/^\/[^?#\s]*[^/?#\s]$/.test(prefix)) fail('managementApi.prefix must be a path like "/@connections"')
  return Object.freeze({ prefix, authorize: authorize as ManagementApiOptions['authorize'] })
}
