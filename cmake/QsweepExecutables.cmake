# The user-facing executables, defined after every module so that optional
# pieces can be linked in when their targets exist.

add_executable(qsweep client/main.cc)
target_compile_options(qsweep PRIVATE ${QSWEEP_WARNINGS})
target_compile_definitions(qsweep PRIVATE QSWEEP_VERSION="${PROJECT_VERSION}")
target_link_libraries(qsweep PRIVATE qsweep::client_models qsweep::slurm_cli)
if(TARGET qsweep::data_cli)
  target_compile_definitions(qsweep PRIVATE QSWEEP_HAVE_DATA_CLI=1)
  target_link_libraries(qsweep PRIVATE qsweep::data_cli)
endif()
if(TARGET qsweep::service_cli)
  target_compile_definitions(qsweep PRIVATE QSWEEP_HAVE_SERVICE_CLI=1)
  target_link_libraries(qsweep PRIVATE qsweep::service_cli)
endif()

# Local commands binary (the worker's local mode).
if(TARGET qsweep::local AND NOT TARGET qsweep-worker)
  add_executable(qsweep-worker worker/local/main.cc)
  target_compile_options(qsweep-worker PRIVATE ${QSWEEP_WARNINGS})
  target_link_libraries(qsweep-worker PRIVATE qsweep::local)
endif()

# The executables users run sit together in the build root.
foreach(exe qsweep qsweep-worker qsweep-server)
  if(TARGET ${exe})
    set_target_properties(${exe} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR})
  endif()
endforeach()
