/**
 * zns-slab: an embedded storage engine for zoned block devices. Objects live in slabs,
 * slabs on append-only zones, and closing an epoch resets its zones.
 */
export { openStore, Store, DEFAULT_QUEUE_DEPTH, MAX_QUEUE_DEPTH, type StoreOptions, type PutOptions, type GetManyOptions } from './engine/store.js';
export { EpochState } from './engine/epoch.js';
export { EpochDomain, type DomainScope } from './engine/domain.js';
export {
  packHandle,
  unpackHandle,
  HANDLE_VERSION,
  MAX_SLAB_ID,
  MAX_GENERATION,
  MAX_SLOT,
  type HandleFields,
  type UnpackedHandle,
} from './engine/handle.js';
export { CLASS_SIZES, SMALL_CLASS_SIZES, MAX_CLASS_SIZE, MAX_SLOTS_PER_SLAB } from './engine/sizeClass.js';
export type { ClassCounters, StoreCounters } from './engine/counters.js';
export {
  SLAB_STATS_VERSION,
  EpochLifecycleState,
  type GlobalStats,
  type ClassStats,
  type EpochStats,
  type EpochClassStats,
  type ZoneStats,
} from './engine/stats.js';
export { ZnsSlabError, ErrorCode } from './errors.js';
export {
  openCache,
  Cache,
  MAX_KEY_BYTES,
  EPOCHS_PER_CACHE,
  REINSERTION_BUDGET_FRACTION,
  type CacheOptions,
  type SetOptions,
  type CacheStats,
} from './cache/cache.js';
export {
  ZoneCondition,
  ZoneType,
  type DeviceGeometry,
  type Zone,
  type ZonedDevice,
  type DeviceKind,
} from './zns/device.js';
export {
  createEmulatedDevice,
  openEmulatedDevice,
  EmulatedZonedDevice,
  DEFAULT_EMULATED_GEOMETRY,
  DEFAULT_EMULATED_PROFILE,
  NULL_BLK_MAX_SECTORS_BYTES,
  NVME_MDTS_BYTES,
  type EmulatedOpenOptions,
  type EmulatedProfile,
  type EmulatedProfileName,
} from './zns/emulated.js';
export { openZonedDevice } from './zns/open.js';
export { openLibzbdDevice, LibzbdDevice, type LibzbdOptions, type LibzbdIoPath } from './zns/libzbd.js';
