/* libdeepseek: symbol visibility. DS_API marks every exported function; everything else in the
 * shared library is hidden (built with -fvisibility=hidden). */
#ifndef DEEPSEEK_EXPORT_H
#define DEEPSEEK_EXPORT_H

#if defined(DS_STATIC_DEFINE)
#define DS_API
#elif defined(_WIN32)
#if defined(DS_BUILDING_LIBRARY)
#define DS_API __declspec(dllexport)
#else
#define DS_API __declspec(dllimport)
#endif
#elif defined(__GNUC__) || defined(__clang__)
#define DS_API __attribute__((visibility("default")))
#else
#define DS_API
#endif

#ifdef __cplusplus
#define DS_EXTERN_C_BEGIN extern "C" {
#define DS_EXTERN_C_END }
#else
#define DS_EXTERN_C_BEGIN
#define DS_EXTERN_C_END
#endif

#endif /* DEEPSEEK_EXPORT_H */
